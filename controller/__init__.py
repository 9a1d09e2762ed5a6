"""Madang's controller: the asyncio runtime, engine, sync, transports and operator surfaces."""
