# lazy: imports a module and writes /tmp at activation time, reads a host file it may not see.
def main(args):
    import textwrap
    import tempfile
    with tempfile.NamedTemporaryFile("w+", dir="/tmp") as f:
        f.write("scratch")
        f.seek(0)
        back = f.read()
    try:
        open("/etc/passwd").read()
        hidden = False
    except FileNotFoundError:
        hidden = True
    return {"short": textwrap.shorten("hello wide world", 12), "tmp": back, "hidden": hidden}
