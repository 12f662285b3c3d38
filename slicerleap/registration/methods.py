"""Registration's methods and their parameters, declared once (slicerleap/declarations.py): the `register` task,
the CLI, RegistrationDLLib and the RegistrationDL panel read these."""
from ..declarations import Method, MethodFamily, Parameter

AFFINE = Parameter("affine", bool, True, "affine pre-alignment (SimpleITK) before the deformable step; off when the "
                   "inputs are already aligned")
NETWORK = Method("network", "register", "a catalog network (TM-DCA by default) predicts the field, refined on the pair", (
    Parameter("nio_iterations", int, 0, "neural instance optimisation steps (fine-tuning the network on this pair; "
              "e.g. 40; 0: none)", minimum=0, maximum=1000, flag="--nio-iters"),
    Parameter("refine_iterations", int, 70, "steps optimising the network's field on this pair as a stationary velocity "
              "field (diffeomorphic, integrated again at the fixed image's resolution), up to 60 at half resolution and "
              "the rest at the fixed image's resolution (down to 2 mm); e.g. 90 is slower and more accurate on small "
              "deformations (0: none)", minimum=0, maximum=1000, flag="--refine-iters"),
))
OPTIMISATION = Method("optimisation", "register", "the displacement field itself is optimised on the pair", (
    Parameter("iterations", int, 80, "field optimisation steps per level", minimum=1, maximum=1000),
    Parameter("smoothness", float, 1.0, "regulariser weight", minimum=0.0, maximum=10.0),
    Parameter("working_spacing_mm", float, 3.0, "isotropic grid the field is optimised on", minimum=0.5, maximum=10.0,
              unit="mm"),
    Parameter("levels", int, 2, "pyramid levels", minimum=1, maximum=4),
))
FORCE = Parameter("force", bool, False, "run the network even on a pair outside its declared domain (another modality); "
                  "the result is then not what the network was made for", panel=False)
REGISTRATION = MethodFamily("register", (NETWORK, OPTIMISATION), shared=(AFFINE, FORCE), title="registration")
