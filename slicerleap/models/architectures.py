"""The networks a model card may name in "architecture", as strings: the science packages define them, and the
model layer below them never imports them until a card asks."""
ARCHITECTURES = {
    "monai.UNet": "monai.networks.nets:UNet",
    "slicerleap.SKSNet": "slicerleap.segmentation.sks.net:SKSNet",
    "slicerleap.BoxUNet": "slicerleap.segmentation.teacher_student.nets:BoxUNet",
    "slicerleap.MPTPN": "slicerleap.segmentation.mptpn.net:mptpn_from_card_args",
    "slicerleap.FedICRAUNet": "slicerleap.federated.fedicra.network:FedICRAUNet",
    "slicerleap.TMDCA": "slicerleap.registration.tm_dca:TMDCA",
    "slicerleap.VoxelMorph": "slicerleap.registration.voxelmorph:PaddedVoxelMorph",
    "slicerleap.E2EVarNet": "slicerleap.reconstruction.varnet:e2e_varnet",
    "slicerleap.ClickNet": "slicerleap.segmentation.interactive.click_net:click_net_from_card_args",
}
