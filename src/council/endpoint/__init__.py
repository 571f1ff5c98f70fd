"""Talking to OpenAI-compatible servers: the streaming client, its errors, the local server.

The only package that imports `openai`. It takes call requests and returns stream data
or raises classified errors; building outcomes from them is the engine's job.
"""
