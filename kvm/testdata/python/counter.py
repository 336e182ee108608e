# counter: a global that counts activations and a buffer whose size varies with the input, so
# activations write different pages; after every reset the count starts again.
n = 0


def main(args):
    global n
    n += 1
    i = int(args.get("i", 0))
    junk = [i] * (2000 * (i % 7))
    return {"n": n, "len": len(junk)}
