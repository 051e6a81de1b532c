"""Lambda functions: each `handler.py` parses the event, calls pure logic, and does the I/O."""
