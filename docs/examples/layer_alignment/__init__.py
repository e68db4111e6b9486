"""The worked example of ADDING_SERVICES.md: a layer alignment service on this
repository's job system (tests/docs/test_adding_services_example.py runs it)."""
