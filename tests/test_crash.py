"""kill -9 a process that appends in a loop: nothing reported final is lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

from bubblechain.ledger import Ledger
from bubblechain.ledger.verify import verify_home

APPENDER = textwrap.dedent(
    """
    import json, sys
    from bubblechain.ledger import Ledger
    led = Ledger.open(sys.argv[1], block_size=64, block_delay=0.01)
    i = 0
    while True:
        batch = [led.append("note", {"text": f"crash {i + k}"}) for k in range(50)]
        i += 50
        led.flush()
        # only now are these final: report them
        print(json.dumps([a.id for a in batch]), flush=True)
    """
)


def test_kill_9_while_appending_loses_nothing_final(home, tmp_path):
    script = tmp_path / "appender.py"
    script.write_text(APPENDER)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(home)], stdout=subprocess.PIPE, text=True
    )
    reported: list[str] = []
    deadline = time.monotonic() + 60
    while len(reported) < 400 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        reported += json.loads(line)
    os.kill(proc.pid, signal.SIGKILL)  # mid-append: more appends are in flight right now
    proc.wait()
    proc.stdout.close()
    assert len(reported) >= 400, "the appender did not make progress"

    # Reopening recovers: blocks left without quorum are re-sent to the witnesses.
    with Ledger.open(home) as led:
        led.flush(timeout=60)
        present = {e.id for e in led.entries(kind="note")}
        st = led.status()
    assert set(reported) <= present
    assert st["final_height"] == st["height"]
    report = verify_home(home)
    assert report.ok, [str(f) for f in report.findings]
