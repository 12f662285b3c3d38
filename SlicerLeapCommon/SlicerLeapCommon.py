from slicer.i18n import tr as _
from slicer.ScriptedLoadableModule import ScriptedLoadableModule, ScriptedLoadableModuleTest

#
# SlicerLeapCommon
#


class SlicerLeapCommon(ScriptedLoadableModule):
    """Hidden module holding what the SlicerLeap modules share: SlicerLeapCommonLib (the engine bootstrap,
    the dependency installer and the job panel of their widgets). The other modules list it in their
    dependencies, so Slicer loads it first; it has no widget and no logic of its own (its self-test checks
    that the shared code imports where the module is installed)."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("SlicerLeap Common")
        self.parent.categories = ["SlicerLeap"]
        self.parent.dependencies = []
        self.parent.hidden = True
        self.parent.contributors = ["SlicerLeap developers"]
        self.parent.helpText = _("""
Shared code of the SlicerLeap modules: makes the SlicerLeap engine importable, installs its Python
packages on first use, and runs the background jobs behind each module's Apply/Cancel button.
This module has no user interface.
""")
        self.parent.acknowledgementText = _("""
Built on 3D Slicer. The module layout follows Slicer's scripted-module template by Jean-Christophe
Fillion-Robin (Kitware), Andras Lasso (PerkLab) and Steve Pieper (Isomics).
""")


#
# SlicerLeapCommonTest
#


class SlicerLeapCommonTest(ScriptedLoadableModuleTest):
    def runTest(self):
        self.test_SlicerLeapCommon1()

    def test_SlicerLeapCommon1(self):
        """SlicerLeapCommonLib makes the engine importable from where the module is (source checkout or
        installed extension) and logs job progress; the widgets' job panel imports."""
        self.delayDisplay("Starting the test")
        import SlicerLeapCommonLib
        from SlicerLeapCommonLib.job_panel import JobPanelMixin
        from slicerleap.jobs import JobWasCancelled

        self.assertTrue(issubclass(JobWasCancelled, Exception) and callable(JobPanelMixin.setupPanel))
        with self.assertLogs(level="INFO") as logs:
            SlicerLeapCommonLib.logProgress({"progress": 0.5, "message": "half way"})
            SlicerLeapCommonLib.logProgress({"progress": 0.6})
        self.assertEqual([record.getMessage() for record in logs.records], ["half way"])
        self.delayDisplay("Test passed")
