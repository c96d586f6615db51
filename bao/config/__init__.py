"""The typed schema of params.yaml, one module per concern, torch-free. Values and their one-line
documentation live in ``conf/config.yaml`` only; these modules give types, choices and checks. A stage
imports the sections it reads (``bao.core.stage.main``); ``schema`` holds them all (check_params)."""
