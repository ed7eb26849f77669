"""A user's specs derived in a child process, within a time and a memory limit.

A formula can be short and still make SymPy work for minutes or take gigabytes
(``exp(exp(exp(exp(x))))``).  The child derives each spec in turn and sends each result
back pickled; the parent stops it when a spec takes too long and reports that spec's
file and line.  The memory limit (``RLIMIT_AS``) holds in the child alone.  The shipped
specs are ours, take well under a second each, and are derived in-process.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import time
from collections.abc import Sequence

from chainrule.codegen.i18n import _, message_of
from chainrule.symbolic.core import Identity, proved
from chainrule.symbolic.from_spec import SpecDerivation, derive_spec, remember
from chainrule.symbolic.spec import Spec, SpecError

SPEC_SECONDS = 5.0  # one spec; the shipped ones take under 0.3 s
FILE_SECONDS = 20.0  # every spec of a file together
MEMORY_BYTES = 512 * 1024 * 1024  # what the child may allocate beyond what it starts with
MAX_RESULT_BYTES = 64 * 1024 * 1024  # a pickled derivation is a few kilobytes
_HEADER = 8


def _address_space() -> int | None:
    """This process's virtual memory size in bytes (Linux), or None where it cannot be read."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _limit_memory() -> None:
    import resource

    size = _address_space()
    if size is not None:
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = size + MEMORY_BYTES
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)  # a lower limit set by the user stays
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _unproved(sd: SpecDerivation) -> Identity | None:
    """The first identity of a derivation (safe forms, kernels) that SymPy cannot prove, or None."""
    d = sd.derivation
    for identity in d.identities + tuple(p for k in d.kernels for p in k.proofs):
        if not identity.holds():
            return identity
    return None


def _derive_one(spec: Spec, prove: bool = False) -> tuple[str, object]:
    """("ok", derivation) or ("error", one line naming the spec); with ``prove``, its identities proved too."""
    where = {"where": spec.where, "name": spec.name}
    try:
        sd = derive_spec(spec)
        failed = _unproved(sd) if prove else None
        if failed is not None:
            return "error", _(
                "{name}: SymPy cannot prove {reason}; nothing was written",
                name=f"{spec.where}: {spec.name}",
                reason=repr(failed.reason),
            )
        return "ok", sd
    except SpecError as exc:
        return "error", message_of(exc)
    except MemoryError:
        return "error", _(
            "{where}: {name}: the derivation needs more than {limit} MiB (the limit)",
            limit=MEMORY_BYTES >> 20,
            **where,
        )
    except RecursionError:
        return "error", _("{where}: {name}: the formula is too deeply nested for SymPy", **where)
    except Exception as exc:  # SymPy may fail in many ways on a strange formula; each is one line
        reason = str(exc).splitlines()[0][:120] if str(exc) else ""
        error = f"{type(exc).__name__}{': ' if reason else ''}{reason}"
        return "error", _("{where}: {name}: SymPy cannot derive it ({error})", error=error, **where)


def _child(specs: Sequence[Spec], fd: int, prove: bool) -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C ends the child at once; the parent reports it
    _limit_memory()
    with os.fdopen(fd, "wb") as out:
        for spec in specs:
            message = _derive_one(spec, prove)
            try:
                blob = pickle.dumps(message)
            except Exception as exc:
                blob = pickle.dumps(
                    ("error", f"{spec.where}: {spec.name}: cannot pass the derivation on: {exc}")
                )
            out.write(len(blob).to_bytes(_HEADER, "big") + blob)
            out.flush()
            if message[0] == "error":
                return


def _ended(pid: int) -> str:
    """How the child ended, in words."""
    _pid, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return _("killed by {signal}", signal=signal.Signals(os.WTERMSIG(status)).name)
    return _("exit status {status}", status=os.waitstatus_to_exitcode(status))


def _collect(pid: int, fd: int, specs: Sequence[Spec]) -> list[SpecDerivation]:
    results: list[SpecDerivation] = []
    buf = bytearray()
    start = spec_start = time.monotonic()
    while len(results) < len(specs):
        spec = specs[len(results)]
        now = time.monotonic()
        deadline = min(spec_start + SPEC_SECONDS, start + FILE_SECONDS)
        if now >= deadline:
            if deadline == start + FILE_SECONDS:
                why = _(
                    "the specs of this file took longer than {limit} s together (the limit)",
                    limit=format(FILE_SECONDS, "g"),
                )
            else:
                why = _(
                    "the derivation took longer than {limit} s (the limit); try a simpler formula",
                    limit=format(SPEC_SECONDS, "g"),
                )
            raise SpecError(_("{where}: {name}: {message}", where=spec.where, name=spec.name, message=why))
        ready, _writable, _errors = select.select([fd], [], [], deadline - now)
        if not ready:
            continue
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            raise SpecError(
                _(
                    "{where}: {name}: the derivation stopped ({ended})",
                    where=spec.where,
                    name=spec.name,
                    ended=_ended(pid),
                )
            )
        buf += chunk
        if len(buf) > MAX_RESULT_BYTES:
            raise SpecError(
                _("{where}: {name}: the derivation is too large to pass on", where=spec.where, name=spec.name)
            )
        while len(buf) >= _HEADER and len(buf) >= _HEADER + int.from_bytes(buf[:_HEADER], "big"):
            size = int.from_bytes(buf[:_HEADER], "big")
            kind, payload = pickle.loads(bytes(buf[_HEADER : _HEADER + size]))  # from our own child
            del buf[: _HEADER + size]
            if kind == "error":
                raise SpecError(payload)
            results.append(payload)
            spec_start = time.monotonic()
    return results


def derive_bounded(specs: Sequence[Spec], prove: bool = False) -> tuple[SpecDerivation, ...]:
    """Every spec's derivation, each within SPEC_SECONDS and MEMORY_BYTES; the first failure is a SpecError.

    The results are remembered, so later calls to ``derive_spec`` in this process reuse them.
    With ``prove`` (generate, before it writes) each derivation's identities are proved in the
    child too, within the same limits, and remembered as proved here.
    Where there is no ``fork`` the specs are derived here, without the limits.
    """
    if not specs:
        return ()
    if not hasattr(os, "fork"):
        results = []
        for spec in specs:
            kind, payload = _derive_one(spec, prove)
            if kind == "error":
                raise SpecError(payload)
            results.append(payload)
    else:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: derive, send, and leave without running the parent's clean-up
            code = 1
            try:
                os.close(read)
                _child(specs, write, prove)
                code = 0
            finally:
                os._exit(code)
        os.close(write)
        try:
            results = _collect(pid, read, specs)
        finally:
            os.close(read)
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass  # already reaped by _ended
    for sd in results:
        remember(sd)
        if prove:
            for identity in sd.derivation.identities + tuple(
                p for k in sd.derivation.kernels for p in k.proofs
            ):
                proved(identity)
    return tuple(results)
