"""A worker that consumes the embeddings queue imports torch and sentence-transformers once, in its main
process before the pool forks, so a restarted worker's children only load the weights: the chaos suite's
worker SIGKILLs (tests/chaos) found each restart spending 22-26 s importing them in every child at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROBE = """
import json, sys
from celery.signals import worker_init
from workers.celery_app import celery_app
from app.embeddings import embedder
celery_app.conf.preload_embedding_model = {preload}
before = "sentence_transformers" in sys.modules
worker_init.send(sender=None)
print(json.dumps({{"before": before, "after": "sentence_transformers" in sys.modules,
                  "models": len(embedder._embedders)}}))
"""


def probe(preload: bool) -> dict[str, object]:
    env = {**os.environ, "REAL_BROKER_URL": "redis://127.0.0.1:9/0"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(preload=preload)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=240,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def test_the_main_process_imports_the_embedding_libraries_before_the_pool_forks() -> None:
    assert probe(preload=True) == {"before": False, "after": True, "models": 0}  # imported, no model loaded


def test_a_worker_without_the_embeddings_queue_imports_nothing_more() -> None:
    assert probe(preload=False) == {"before": False, "after": False, "models": 0}
