"""Batch grading foundations: a sandbox for one submission's command and a resumable batch driver.

* :mod:`convlab.grading.sandbox` runs one command in a fresh private directory with a wall-clock
  limit, a memory limit, no network, an unprivileged user and a process tree that is always
  killed to the last process, and reports what happened (:class:`~convlab.grading.sandbox.Outcome`).
* :mod:`convlab.grading.batch` finds the submissions in a folder, grades them in parallel with a
  caller-supplied function, keeps each result on disk as soon as it exists (a killed batch resumes
  where it stopped) and writes the gradebook.
"""
