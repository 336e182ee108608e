# forks: needs a child process, which a unikernel guest cannot have.
import os

def main(args):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    return {"forked": pid}
