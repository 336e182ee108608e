# nonjson: returns a string, not a dictionary or an array.
def main(args):
    return "this is not a dictionary"
