"""Madang's controller: the asyncio runtime, engine, sync, transports, operator surfaces and CLI."""
