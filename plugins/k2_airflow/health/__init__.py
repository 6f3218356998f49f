"""The K2 health page in Airflow's UI (issue 15, item 4): streams, workers, dead letters,
completeness and maintenance runs on one page that refreshes itself.

- :mod:`.shape`: the page's figures from what the sources returned (pure, unit-tested);
- :mod:`.sources`: one short, time-bounded reader per section;
- :mod:`.collect`: every section read side by side under one deadline;
- :mod:`.app`: the FastAPI app (the page and its JSON), behind Airflow's login.

``plugins/k2_health_plugin.py`` registers the app and the navigation entry with Airflow.
"""
