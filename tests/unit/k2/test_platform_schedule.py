"""`k2 up` leaves the streams, the babysitter and both maintenance DAGs scheduled."""

from __future__ import annotations

from k2ops import platform


class RecordingApi:
    """Stands in for AirflowApi: records the calls `schedule` makes."""

    def __init__(self) -> None:
        self.paused: dict[str, bool] = {}
        self.triggered: list[str] = []

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.paused[dag_id] = paused

    def trigger(self, dag_id: str, conf: dict | None = None) -> str:
        self.triggered.append(dag_id)
        return f"manual__{dag_id}"


def test_up_unpauses_retention_and_compaction_without_triggering_them():
    api = RecordingApi()
    platform.schedule(api)  # type: ignore[arg-type]
    assert api.paused["retention"] is False
    assert api.paused["compaction"] is False
    assert api.paused["completeness_ledger"] is False
    assert api.paused["data_quality"] is False
    assert api.paused["streaming_babysitter"] is False
    for stream in ("bronze_ingestion", "silver_transformation", "gold_aggregation"):
        assert api.paused[f"stream_{stream}"] is False
    # Maintenance runs on its schedule; only the babysitter is kicked off at once.
    assert api.triggered == ["streaming_babysitter"]
