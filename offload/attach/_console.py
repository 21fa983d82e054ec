"""The interactive loop of ``offload attach JOB``: IPython's own test for a complete statement,
continuation prompts, history through readline."""

from __future__ import annotations

import sys

from offload.attach._kernel import SubshellClient
from offload.attach._target import Target


def _complete(code: str) -> bool:
    try:
        from IPython.core.inputtransformer2 import TransformerManager
    except ImportError:  # no IPython here: one line is one statement
        return True
    status, _ = TransformerManager().check_complete(code)
    return status != "incomplete"


def repl(client: SubshellClient, target: Target) -> int:
    try:
        import readline  # noqa: F401  (line editing and history for input())
    except ImportError:
        pass
    job = target.job.id
    print(f"attached to job {job}'s kernel (a subshell: the notebook keeps running; its variables are "
          f"yours to read). Ctrl-D leaves; the job goes on.", file=sys.stderr)
    n = 1
    while True:
        lines: list[str] = []
        try:
            while True:
                line = input(f"[{job}] In [{n}]: " if not lines else "   ...: ")
                lines.append(line)
                code = "\n".join(lines)
                if _complete(code + "\n") and (len(lines) == 1 or not line.strip()):
                    break  # a complete statement; a block ends with an empty line
        except EOFError:
            print(file=sys.stderr)
            return 0
        except KeyboardInterrupt:
            print("^C", file=sys.stderr)
            continue
        code = "\n".join(lines).strip("\n")
        if not code.strip():
            continue
        try:
            client.execute(code)
        except KeyboardInterrupt:  # stop waiting; the kernel is never interrupted from here
            print("\n(stopped waiting; the code may still be running in the job's kernel)", file=sys.stderr)
        n += 1
