"""Scale-out on Ray (optional extra `distributed`): distributed offline builds."""
