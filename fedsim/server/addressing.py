"""Finding out which partition each Flower node simulates (node ids are random on Ray)."""

from __future__ import annotations

from flwr.app import ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid


def query_partitions(grid: Grid, node_ids: list[int], timeout: float = 600.0) -> dict[int, tuple[int, int]]:
    """Ask nodes for (partition id, number of examples); nodes that fail to answer are left out."""
    messages = [
        Message(content=RecordDict({"config": ConfigRecord({})}), message_type=MessageType.QUERY, dst_node_id=n)
        for n in node_ids
    ]
    answers = {}
    for reply in grid.send_and_receive(messages, timeout=timeout):
        if reply.has_error():
            continue
        metrics = reply.content["metrics"]
        answers[reply.metadata.src_node_id] = (int(metrics["partition-id"]), int(metrics["num-examples"]))
    return answers
