"""Worker of tests/test_multiprocess.py: process-0 writes and their failure path, across 2 processes.

    multiprocess_main_writes.py OUT_DIR
"""

import json
import pathlib
import sys

from zerogr_jax import distributed

info = distributed.initialize()


def main(out: str) -> None:
    path = pathlib.Path(out) / "result.json"
    distributed.write_json_on_main(path, {"written_by": info.process_index})
    # when write_json_on_main returns, every process sees the complete file
    print(f"p{info.process_index} reads {json.loads(path.read_text())}", flush=True)

    def fails():
        raise ZeroDivisionError("process 0 fails on purpose")
    try:
        distributed.run_on_main(fails, "failing write")
    except Exception as e:  # every process must get here, none may hang
        print(f"p{info.process_index} raised {type(e).__name__}: {e}", flush=True)
    else:
        raise SystemExit("run_on_main swallowed the failure")
    assert distributed.run_on_main(lambda: 42, "value") == (42 if info.process_index == 0 else None)
    print(f"p{info.process_index} OK", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
