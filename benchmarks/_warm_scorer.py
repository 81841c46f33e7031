"""One warm scoring process for the benchmarks: scores the same export once per line of stdin.

    python benchmarks/_warm_scorer.py TESTS EXPORT

Each line read scores ``EXPORT`` with the hidden tests ``TESTS`` in this same process (warm after
the first) and prints one JSON line: seconds, total, peak RSS (MB) and a digest of the scores and
messages (two routes that agree print the same digest). Used by ``bench_scorer.py`` and
``bench_predictions.py``.
"""

from __future__ import annotations

import hashlib
import json
import resource
import sys
import time
from pathlib import Path

from convlab.grading import grade, integrity, score


def main() -> None:
    tests_source, export = Path(sys.argv[1]), Path(sys.argv[2])
    for _line in sys.stdin:
        start = time.monotonic()
        tests = score.load_tests(tests_source)
        grade._preload()
        loaded = score.load_snapshots(export)
        try:
            result = score.score(tests, loaded, observe=integrity.Collector({}))
        finally:
            loaded.close()
        import keras

        keras.backend.clear_session()
        messages = json.dumps([result["scores"], result["messages"]], sort_keys=True, ensure_ascii=False)
        print(json.dumps({"seconds": time.monotonic() - start, "total": result["total"],
                          "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                          "messages_sha": hashlib.sha256(messages.encode()).hexdigest()[:16]}), flush=True)


if __name__ == "__main__":
    main()
