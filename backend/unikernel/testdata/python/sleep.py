# sleep: waits args["ms"] milliseconds of the monotonic clock (in short naps, so a library OS
# that caps one sleep cannot shorten the wait), returns {"slept": ms}.
import time

def main(args):
    ms = int(args.get("ms", 0))
    end = time.monotonic() + ms / 1000.0
    while time.monotonic() < end:
        time.sleep(0.05)
    return {"slept": ms}
