"""`flower-supernode` that runs only the SlicerLeap federated app (app_pin.py says why a pinned hash).

    python -m slicerleap.federated.guarded_supernode --slicerleap-app-hash HASH <flower-supernode options>

The check sits where Flower's own SuperNode fetches a run's app bundle (`get_fab` in
`flwr.supernode.start_client_internal._pull_and_store_message`), inside the SuperNode process: a foreign
bundle is never stored, so no ClientApp process is ever given it. The sender gets Flower's INVALID_FAB error
reply, the same one a failed `--trusted-entities` check sends. Written against flwr 1.42.0 (pinned)."""
from __future__ import annotations

import sys
from logging import ERROR

PIN_OPTION = "--slicerleap-app-hash"


class _ForeignApp(Exception):
    def __init__(self, fab_hash: str):
        super().__init__(fab_hash)
        self.fab_hash = fab_hash


def guard_pull(original, pinned: str):
    """Wrap Flower's `_pull_and_store_message(**kwargs)` so that a run whose app is not the pinned one is refused."""
    from flwr.app import Error, Message
    from flwr.common.constant import ErrorCode
    from flwr.supercore import log
    from flwr.supernode import start_client_internal as supernode

    from .app_pin import is_slicerleap_app

    def pull(**kwargs):
        receive, get_fab = kwargs["receive"], kwargs["get_fab"]
        pulled = []

        def receiving():
            message = receive()
            pulled.append(message[0] if message else None)
            return message

        def checked_get_fab(fab_hash: str, run_id: int):
            fab = get_fab(fab_hash, run_id)
            if not is_slicerleap_app(fab.content, pinned):
                raise _ForeignApp(fab.hash_str or fab_hash)
            return fab

        try:
            return original(**{**kwargs, "receive": receiving, "get_fab": checked_get_fab})
        except _ForeignApp as refused:
            log(ERROR, "refused app %s: not the SlicerLeap federated app", refused.fab_hash)
            message = pulled[-1]
            reply = Message(Error(ErrorCode.INVALID_FAB, "refused: not the SlicerLeap federated app"), reply_to=message)
            supernode._insert_message(reply, kwargs["state"], kwargs["object_store"])
            return message.metadata.run_id

    return pull


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if PIN_OPTION not in argv or argv.index(PIN_OPTION) + 1 >= len(argv):
        sys.exit(f"{PIN_OPTION} HASH is required: a site runs only the pinned SlicerLeap app")
    at = argv.index(PIN_OPTION)
    pinned = argv[at + 1]
    del argv[at:at + 2]

    from flwr.supernode import start_client_internal as supernode
    from flwr.supernode.cli.flower_supernode import flower_supernode

    from flwr.supercore.exit import ExitCode, flwr_exit

    supernode._pull_and_store_message = guard_pull(supernode._pull_and_store_message, pinned)
    sys.argv = ["flower-supernode", *argv]  # Flower parses sys.argv itself
    flower_supernode()
    # Flower returns here when it gave up on a lost SuperLink, but its Runtime API thread would keep the process up
    flwr_exit(ExitCode.SUPERNODE_CONNECTION_ERROR, "The SuperNode lost its connection to the SuperLink.")


if __name__ == "__main__":
    main()
