"""QTA query rewriting: a causal LM rewrites the request to look like the descriptions of the tools it needs.

Inference: the rewriter sees the query and a few catalogue tools (the prompt template is configurable)
and generates a rewrite with bounded settings; if generation does not finish within the timeout, or
produces nothing, the original query is used.

Alignment (the QTA recipe): for each annotated (query, gold tools) sample the LM, prompted with the
query and its gold tools, writes candidate rewrites; a frozen retriever ranks the catalogue for the
original query and for each rewrite; candidates are ordered by where the gold tools land (mean
reciprocal rank of the gold tools); the best becomes "chosen", the worst "rejected", and the pair,
under the inference prompt, trains the rewriter with DPO (trl's DPOTrainer).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import asdict, dataclass
from pathlib import Path

from ferret.encoders.base import ModelLoadError
from ferret.errors import InvalidArgument
from ferret.tools.catalogue import Tool
from ferret.tools.evaluate import Example

DEFAULT_TEMPLATE = (
    "Rewrite the user request so that it reads like the description of the tool that can fulfil it.\n"
    "Some available tools:\n{tools}\n"
    "User request: {query}\n"
    "Rewritten request:"
)
MAX_NEW_TOKENS_LIMIT = 128


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 48
    temperature: float = 0.8
    top_p: float = 0.95

    def __post_init__(self) -> None:
        if not 1 <= self.max_new_tokens <= MAX_NEW_TOKENS_LIMIT:
            raise InvalidArgument(f"max_new_tokens={self.max_new_tokens}; use 1..{MAX_NEW_TOKENS_LIMIT}")
        if not 0.0 < self.temperature <= 2.0 or not 0.0 < self.top_p <= 1.0:
            raise InvalidArgument("temperature must be in (0, 2] and top_p in (0, 1]")


@dataclass(frozen=True)
class Rewrite:
    text: str
    fell_back: bool  # True: the original query is returned (timeout or empty generation)
    reason: str = ""


@dataclass(frozen=True)
class PreferencePair:
    prompt: str
    chosen: str
    rejected: str
    chosen_score: float
    rejected_score: float


def tool_lines(tools: Sequence[Tool]) -> str:
    return "\n".join(f"- {t.name}: {t.description}" for t in tools)


class QueryRewriter:
    def __init__(
        self,
        model_path: str | Path,
        template: str = DEFAULT_TEMPLATE,
        settings: GenerationSettings = GenerationSettings(),
        timeout_s: float = 2.0,
        seed: int = 0,
    ):
        if "{query}" not in template:
            raise InvalidArgument("the rewrite prompt template needs a {query} placeholder")
        if timeout_s <= 0:
            raise InvalidArgument(f"timeout_s={timeout_s}; give a positive number of seconds")
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
            self.model = AutoModelForCausalLM.from_pretrained(model_path, local_files_only=True)
        except OSError as exc:
            raise ModelLoadError(
                f"cannot load a causal LM for query rewriting from {model_path}: {exc}"
            ) from exc
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "left"  # generation continues after the prompt
        self.model.eval()
        self.template, self.settings, self.timeout_s = template, settings, timeout_s
        self._torch = torch
        self._seed = seed
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qta-rewrite")

    def prompt(self, query: str, tools: Sequence[Tool] = ()) -> str:
        return self.template.format(query=query, tools=tool_lines(tools))

    def generate(
        self, prompts: list[str], samples: int = 1, stop: threading.Event | None = None
    ) -> list[list[str]]:
        """`samples` completions per prompt (sampled when samples > 1, greedy otherwise)."""
        from transformers import StoppingCriteria, StoppingCriteriaList

        class _Stop(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs) -> bool:
                return stop is not None and stop.is_set()

        torch = self._torch
        torch.manual_seed(self._seed)
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True)
        s = self.settings
        with torch.inference_mode():
            out = self.model.generate(
                **enc,
                max_new_tokens=s.max_new_tokens,
                do_sample=samples > 1,
                temperature=s.temperature,
                top_p=s.top_p,
                num_return_sequences=samples,
                pad_token_id=self.tokenizer.pad_token_id,
                stopping_criteria=StoppingCriteriaList([_Stop()]),
            )
        texts = self.tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        return [
            [t.strip().split("\n")[0].strip() for t in texts[i * samples : (i + 1) * samples]]
            for i in range(len(prompts))
        ]

    def rewrite(self, query: str, tools: Sequence[Tool] = ()) -> Rewrite:
        """The rewritten query, or the original one when generation times out or yields nothing."""
        stop = threading.Event()
        future = self._pool.submit(self.generate, [self.prompt(query, tools)], 1, stop)
        try:
            text = future.result(timeout=self.timeout_s)[0][0]
        except FutureTimeout:
            stop.set()  # the generation loop checks this flag after each token and ends
            return Rewrite(query, fell_back=True, reason=f"rewrite took longer than {self.timeout_s}s")
        if not text:
            return Rewrite(query, fell_back=True, reason="the rewriter produced an empty text")
        return Rewrite(text, fell_back=False)


def gold_score(ranked: Sequence[str], gold: Sequence[str]) -> float:
    """Mean reciprocal rank of the gold tools in `ranked` (0 for a gold tool not retrieved)."""
    position = {tool: i for i, tool in enumerate(ranked)}
    return sum(1.0 / (position[g] + 1) if g in position else 0.0 for g in gold) / len(gold)


def preference_pairs(
    rewriter: QueryRewriter,
    retrieve: Callable[[list[str], int], list[list[str]]],
    tools: dict[str, Tool],
    examples: Sequence[Example],
    rewrites_per_query: int = 2,
    context_tools: int = 3,
    depth: int = 20,
) -> list[PreferencePair]:
    """QTA pairs: original query + sampled rewrites, ranked by where the gold tools land; best vs worst.

    Samples whose candidates all score the same give no preference and yield no pair.
    """
    if rewrites_per_query < 1:
        raise InvalidArgument("rewrites_per_query must be at least 1")
    unknown = sorted({t for e in examples for t in e.tools} - set(tools))
    if unknown:
        raise InvalidArgument(f"gold tools {unknown[:5]} are not in the catalogue")
    queries = [e.query for e in examples]
    first = retrieve(queries, max(depth, context_tools))
    generation_prompts = [rewriter.prompt(e.query, [tools[t] for t in e.tools]) for e in examples]
    rewrites = rewriter.generate(generation_prompts, samples=rewrites_per_query)
    pairs = []
    for example, ranked, candidates in zip(examples, first, rewrites, strict=True):
        texts = [example.query, *(c for c in candidates if c)]
        rankings = [ranked, *retrieve(texts[1:], depth)] if len(texts) > 1 else [ranked]
        scored = sorted(
            zip((gold_score(r[:depth], example.tools) for r in rankings), texts, strict=True),
            key=lambda pair: -pair[0],
        )
        (best, chosen), (worst, rejected) = scored[0], scored[-1]
        if best == worst or chosen == rejected:
            continue
        prompt = rewriter.prompt(example.query, [tools[t] for t in ranked[:context_tools]])
        pairs.append(PreferencePair(prompt, " " + chosen, " " + rejected, best, worst))
    return pairs


def write_pairs(pairs: Sequence[PreferencePair], path: str | Path) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for pair in pairs:
            fh.write(json.dumps(asdict(pair)) + "\n")


def read_pairs(path: str | Path) -> list[PreferencePair]:
    with open(path, encoding="utf-8") as fh:
        return [PreferencePair(**json.loads(line)) for line in fh if line.strip()]


@dataclass(frozen=True)
class DPOSettings:
    epochs: float = 1.0
    learning_rate: float = 5e-6
    beta: float = 0.1
    batch_size: int = 4
    max_length: int = 512
    max_steps: int = -1


def train_qta(
    model_path: str | Path,
    pairs: Sequence[PreferencePair],
    out_dir: str | Path,
    settings: DPOSettings = DPOSettings(),
) -> dict[str, float]:
    """DPO-train the rewriter on preference pairs with trl; saves model + tokenizer to `out_dir`."""
    if not pairs:
        raise InvalidArgument("no preference pairs to train on; run `ferret tools qta-pairs` first")
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_path, local_files_only=True)
    data = Dataset.from_list(
        [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in pairs]
    )
    config = DPOConfig(
        output_dir=str(out_dir),
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps,
        learning_rate=settings.learning_rate,
        beta=settings.beta,
        per_device_train_batch_size=settings.batch_size,
        max_length=settings.max_length,
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        use_cpu=True,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = DPOTrainer(model=model, args=config, train_dataset=data, processing_class=tokenizer)
    result = trainer.train()
    trainer.save_model(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    return {k: float(v) for k, v in result.metrics.items() if isinstance(v, int | float)}
