// Placeholder: the chat example is being written.
print("chat: not yet")
