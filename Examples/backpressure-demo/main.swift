print("backpressure-demo: coming with StreamKit operators")
