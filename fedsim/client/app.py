"""The Flower ClientApp (Message API) of a simulated client.

Handlers:
- ``train``: load the global weights, train locally (plain torch), reply with the new
  weights (``arrays``), the update of the output layer (``output_update``: ``bias`` and
  ``weight`` = local minus global) and metrics (``num-examples``, ``train-loss``,
  ``num-steps``, ``partition-id``).
- ``evaluate``: loss/accuracy of the received model on the client's local training data
  (what Power-of-Choice asks of its candidates); with ``want-gradient`` in the config,
  also the full-batch gradient (``gradient`` record, key ``flat``) for DivFL.
- ``query``: the client's partition id and size, used by the server to address clients
  by partition id on any engine.

Models and client tensors live on the runtime's device (``ClientRuntime(device=...)``);
replies always carry CPU arrays.
"""

from __future__ import annotations

import torch
from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fedsim.client.runtime import ClientRuntime
from fedsim.client.training import (
    LocalTrainingConfig,
    evaluate_model,
    evaluate_with_gradient,
    train_locally,
)
from fedsim.models.networks import output_layer_names
from fedsim.streams import client_training_seed


def partition_id_of(context: Context) -> int:
    """The partition a node simulates (set by both engines in ``node_config``)."""
    return int(context.node_config["partition-id"])


OPTIMIZER_STATE = "optimizer-state"
"""Key of a client's kept optimizer state in its node's ``Context.state`` (``train.keep_optimizer_state``)."""


def make_client_app(runtime: ClientRuntime) -> ClientApp:
    """Build the ClientApp serving the partitions held by ``runtime``."""
    app = ClientApp()
    app.fedsim_runtime = runtime  # engines may prepare the data before forking workers
    weight_key, bias_key = output_layer_names()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        pid = partition_id_of(context)
        config = msg.content["config"]
        model = runtime.model()
        global_state = msg.content["arrays"].to_torch_state_dict()
        model.load_state_dict(global_state)
        x, y = runtime.client_tensors(pid)
        seed = client_training_seed(int(config.get("seed", 0)), int(config.get("server-round", 0)), pid)
        torch.manual_seed(seed)  # dropout etc.: same on every engine, and after a resume
        train_config = LocalTrainingConfig.from_mapping(config)
        kept = context.state.array_records.get(OPTIMIZER_STATE) if train_config.keep_optimizer_state else None
        result = train_locally(model, x, y, train_config, seed,
                               {k: v.numpy() for k, v in kept.items()} if kept is not None else None)
        if result.optimizer_state is not None:  # this client's optimizer, kept for its next participation
            context.state[OPTIMIZER_STATE] = ArrayRecord({k: Array(v) for k, v in result.optimizer_state.items()})
        new_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        output_update = {
            "bias": new_state[bias_key] - global_state[bias_key],
            "weight": new_state[weight_key] - global_state[weight_key],
        }
        metrics = MetricRecord(
            {
                "num-examples": int(len(y)),
                "train-loss": float(result.mean_loss),
                "num-steps": int(result.num_steps),
                "partition-id": pid,
            }
        )
        content = RecordDict(
            {
                "arrays": ArrayRecord(new_state),
                "output_update": ArrayRecord(output_update),
                "metrics": metrics,
            }
        )
        return Message(content=content, reply_to=msg)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        pid = partition_id_of(context)
        model = runtime.model()
        model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
        x, y = runtime.client_tensors(pid)
        config = msg.content.get("config")
        gradient = None
        if config is not None and bool(config.get("want-gradient", False)):
            loss, accuracy, gradient = evaluate_with_gradient(model, x, y)
        else:
            loss, accuracy = evaluate_model(model, x, y)
        metrics = MetricRecord(
            {"num-examples": int(len(y)), "loss": float(loss), "accuracy": float(accuracy), "partition-id": pid}
        )
        content = RecordDict({"metrics": metrics})
        if gradient is not None:
            content["gradient"] = ArrayRecord({"flat": Array(gradient)})
        return Message(content=content, reply_to=msg)

    @app.query()
    def query(msg: Message, context: Context) -> Message:
        pid = partition_id_of(context)
        metrics = MetricRecord({"partition-id": pid, "num-examples": int(len(runtime.client_indices[pid]))})
        return Message(content=RecordDict({"metrics": metrics}), reply_to=msg)

    return app
