print("http: not yet")
