"""The two-phase grader (``convlab grade``) and the manual questions; one line per module, top down.

* :mod:`~convlab.grading.grade`: ``convlab grade``: grades one submission (phases 1 and 2) and a folder.
* :mod:`~convlab.grading.batch`: finds the submissions, grades them in parallel and resumably, the gradebook.
* :mod:`~convlab.grading.execute`: phase 1: unpacks a submission, runs its notebook in the sandbox.
* :mod:`~convlab.grading.runner`: phase 1 in the sandbox: nbclient with bounded outputs (run by path).
* :mod:`~convlab.grading.exporter`: phase 1 in the kernel: snapshots the values the tests read.
* :mod:`~convlab.grading.export_format`: the export's names and limits, shared by both phases.
* :mod:`~convlab.grading.score_process`: phase 2 in a fresh sandboxed process per submission.
* :mod:`~convlab.grading.score`: phase 2: loads the export as hostile data and runs the lab's tests.
* :mod:`~convlab.grading.model_policy`: the allow-list and size bounds of a submitted Keras model.
* :mod:`~convlab.grading.probes`: a function's answers on the grader's fixed probes (kernel and scorer).
* :mod:`~convlab.grading.layers`: reference layer operations that the probes use.
* :mod:`~convlab.grading.sandbox`: runs one command confined, with limits; reports what happened.
* :mod:`~convlab.grading.sandbox_init`: the sandbox's init (PID 1), run by path: mounts, Landlock, user.
* :mod:`~convlab.grading.feedback`: each student's feedback pages and notebook, Gradescope results.
* :mod:`~convlab.grading.report`: the class report, and the escaping and redaction of student text.
* :mod:`~convlab.grading.integrity`: fingerprints of models and answers; the pairs that match.
* :mod:`~convlab.grading.figures`: the pictures (learning curves, confusion matrix, histogram).
* :mod:`~convlab.grading.manual`: manual questions: answers extracted, grade files, merge, LMS CSV.
* :mod:`~convlab.grading.results`: the per-submission result type and its stored JSON form.
* :mod:`~convlab.grading.files`: the one atomic file writer of every output.
"""
