// Placeholder: the proxy example is being written.
print("proxy: not yet")
