"""Scale-out on Ray (optional extra `distributed`): distributed offline builds (`build`) and the shard router
on Ray Serve (`serve`)."""
