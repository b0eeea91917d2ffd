print("factorials: coming with StreamKit operators")
