"""Parley console: the agents' and supervisors' web app, served from one origin that proxies the APIs."""
