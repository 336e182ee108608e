# snapinvoker Python launcher (see runtimes/doc.go for the framing).
#
# Started knowing nothing. Reads one init line on fd 0 ({"name","main","binary","code","env"}),
# loads the action and acks {"ok":true} (or {"error": ...}) on fd 3; then, for every run line,
# calls the action and writes one reply line on fd 3. After init and after every run it writes
# the end marker on stdout and on stderr BEFORE the fd 3 line, so the driver can attribute every
# log line to the step that wrote it.
#
# Kept to the standard library with no threads, subprocesses or sockets, and only plain blocking
# reads of fd 0 and writes of fd 3, so the same file runs unchanged inside a KVM guest whose
# library OS serves a small syscall surface.
import json
import os
import sys
import traceback
import types

# base64, io, tempfile and zipfile are imported only for zip actions: every module imported at
# boot is part of each runtime snapshot and costs start-up time.

MARKER = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX"

_pending = b""


def read_line():
    """Returns the next line of fd 0 without its newline, or None at end of input."""
    global _pending
    while True:
        nl = _pending.find(b"\n")
        if nl >= 0:
            line, _pending = _pending[:nl], _pending[nl + 1:]
            return line
        chunk = os.read(0, 1 << 16)
        if not chunk:
            if _pending:
                line, _pending = _pending, b""
                return line
            return None
        _pending += chunk


def reply(obj=None, raw=None):
    """Ends a step: markers on both log streams first, then one line on fd 3."""
    sys.stdout.write(MARKER + "\n")
    sys.stdout.flush()
    sys.stderr.write(MARKER + "\n")
    sys.stderr.flush()
    if raw is None:
        raw = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    data = (raw + "\n").encode("utf-8")
    while data:
        n = os.write(3, data)
        data = data[n:]


def env_string(v):
    if isinstance(v, str):
        return v
    if v is None:
        return ""
    return json.dumps(v, separators=(",", ":"))


def load(init):
    """Loads the action from the init value; returns the function to call."""
    code = init.get("code")
    if not isinstance(code, str) or code == "":
        raise LoadError("Missing main/no code to execute.")
    main_name = init.get("main") or "main"
    if not isinstance(main_name, str):
        raise LoadError("main must be a string")
    env = init.get("env") or {}
    if not isinstance(env, dict):
        raise LoadError("env must be an object")
    for k, v in env.items():
        os.environ[str(k)] = env_string(v)

    module = types.ModuleType("main__")
    if init.get("binary"):
        import base64
        import io
        import tempfile
        import zipfile

        try:
            data = base64.b64decode(code, validate=False)
            zf = zipfile.ZipFile(io.BytesIO(data))
        except Exception as ex:
            raise LoadError("Invalid zip file: %s" % ex)
        if "__main__.py" not in zf.namelist():
            raise LoadError("Zip file does not include __main__.py")
        # Extracted where the process may write (the container's private /tmp), so that modules,
        # packages and data files next to __main__.py import and open as upstream's do.
        target = tempfile.mkdtemp(prefix="action-")
        zf.extractall(target)
        sys.path.insert(0, target)
        # A virtualenv packed at the zip's root (openwhisk-runtime-python's convention): its
        # site-packages come after the action's own modules.
        venv_lib = os.path.join(target, "virtualenv", "lib")
        if os.path.isdir(venv_lib):
            for name in sorted(os.listdir(venv_lib)):
                site = os.path.join(venv_lib, name, "site-packages")
                if name.startswith("python3") and os.path.isdir(site):
                    sys.path.insert(1, site)
        path = os.path.join(target, "__main__.py")
        with open(path, "rb") as f:
            source = f.read()
        os.chdir(target)
    else:
        source = code
        path = "__main__.py"
    module.__file__ = path
    sys.modules["main__"] = module
    exec(compile(source, path, "exec"), module.__dict__)
    fn = module.__dict__.get(main_name)
    if not callable(fn):
        raise LoadError("Action entrypoint '%s' is not a function." % main_name)
    return fn


class LoadError(Exception):
    pass


def run(fn, args):
    if not isinstance(args, dict):
        return {"error": "The action did not receive a dictionary as input."}
    for key, val in args.items():
        if key != "value" and isinstance(val, str):
            os.environ["__OW_" + key.upper()] = val
    value = args.get("value", {})
    try:
        res = fn(value)
    except Exception as ex:  # as upstream: SystemExit still ends the process
        traceback.print_exc(file=sys.stderr)
        return {"error": str(ex)}
    return res


def main():
    try:
        sys.stdout.reconfigure(line_buffering=True)
        sys.stderr.reconfigure(line_buffering=True)
    except Exception:
        pass
    line = read_line()
    if line is None:
        return 0
    try:
        init = json.loads(line)
        if not isinstance(init, dict):
            raise LoadError("init line must be a JSON object")
        fn = load(init)
    except LoadError as ex:
        reply({"error": str(ex)})
        return 1
    except BaseException as ex:  # noqa: B902 - syntax errors, SystemExit at import, ...
        traceback.print_exc(file=sys.stderr)
        reply({"error": "%s: %s" % (type(ex).__name__, ex)})
        return 1
    reply({"ok": True})

    while True:
        line = read_line()
        if line is None:
            return 0
        try:
            args = json.loads(line)
        except ValueError as ex:
            reply({"error": "invalid run line: %s" % ex})
            continue
        res = run(fn, args)
        try:
            out = json.dumps(res, ensure_ascii=False, separators=(",", ":"))
        except (TypeError, ValueError) as ex:
            reply({"error": "The action did not return a serializable result: %s" % ex})
            continue
        if not isinstance(res, (dict, list)):
            # As the actionloop proxy answers a scalar result.
            reply(raw='#502 {"error":"The action did not return a dictionary or array."}')
            continue
        reply(raw=out)


if __name__ == "__main__":
    sys.exit(main())
