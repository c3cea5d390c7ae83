"""Training: turns a dataset snapshot into a LoRA adapter (SFT, then optional DPO).

A job runs as its own process, ``python -m tunepipe.training <job_dir>``, so that a crash or an
out-of-memory kill never takes the server down; the server talks to it only through the job
directory and the child's stdout.

Job directory (written by the server)::

    config.json          TrainingConfig (tunepipe.training.config)
    train.jsonl          one row per line: messages, output, rejected_message, tools, ...

and what the child adds::

    adapter/             PEFT adapter + tokenizer (base_model_name_or_path = base_model_name)
    training_log.jsonl   every event line, as written to stdout
    metrics.json         the final metrics

Stdout carries one JSON object per line and nothing else: ``start`` and ``progress`` per stage
(``sft``, ``dpo``), then ``done`` with the metrics (exit 0) or ``error`` with a message (exit 1).
SIGTERM ends the process at once.

Importing this package (and :mod:`tunepipe.training.config`) does not import torch.
"""
