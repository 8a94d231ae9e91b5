"""The engines that run the per-chunk tasks: ``local`` (this process) and ``spark``.

Only the job (:mod:`riskmodel.batch._job`) imports them; the Spark engine is imported only
when ``engine="spark"`` is asked for.
"""
