"""The conformance tests: one module per API area, each test tied to one catalogue requirement.

Run them with ``ollama-conformance run`` or ``pytest --pyargs conformance.suite [--target URL]``.
Tests talk to the target only through the ``client`` fixture and judge only through the helpers
of :mod:`conformance.verdict`, so every failure names its requirement, the expected and the actual
behaviour, and a curl line, and the plugin can grade it (FAIL / WARN / NOT IMPLEMENTED / TIMEOUT).

Writing a test::

    @pytest.mark.requirement("chat.stream.content-type")      # an id from requirements.toml
    def test_chat_stream_is_ndjson(client, model_for):
        model = model_for("completion")                         # or SKIP naming --model
        exchange = client.post("/api/chat", json={"model": model, "messages": [...]})
        expect_status(exchange, 200)                            # TIMEOUT / NOT IMPLEMENTED too
        expect_content_type(exchange, "application/x-ndjson")
        final = exchange.final
        check(final is not None, expected="a done:true line", actual=f"{len(exchange.lines)}"
              " lines, none with done:true", exchange=exchange)

Fixtures: ``target`` (discovered server), ``client``, ``api_version`` (the version the target is
judged as), ``model_for(capability)``, ``run_prefix`` and ``scratch_name`` (a tracked, unique model
name that is also callable for another one; created models are deleted at the end of the run).
Use ``assume``/``assume_status``/``assume_json_object`` for preconditions that another
requirement judges, so one broken behaviour is not counted twice.
"""
