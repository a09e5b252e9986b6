print("normlab")
