"""The tail served by NVIDIA Triton Inference Server: one edge GPU batching the frames of a fleet.

`protocol` names the model's tensors (torch-free, shared by both sides), `tail_model` is the batched
tail behind them, `server` embeds Triton through PyTriton (`tail_server`), `repository` writes the same
model as a model repository for a standalone `tritonserver`, and `client` is what a tail node sends
through when it is given a `server_url`.
"""
