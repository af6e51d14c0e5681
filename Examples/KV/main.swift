print("kv: not yet")
