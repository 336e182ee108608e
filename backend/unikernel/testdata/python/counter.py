# counter: counts activations in a module global; every activation starting from the function
# snapshot sees 1.
count = 0

def main(args):
    global count
    count += 1
    return {"count": count}
