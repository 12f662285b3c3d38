"""Entry points Flower loads from the app bundle; the apps themselves are in the installed package.
(Plain assignments: Flower checks these names statically before a run is accepted.)"""
from slicerleap.federated import apps as _apps

server_app = _apps.server_app
client_app = _apps.client_app
