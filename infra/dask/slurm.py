"""Dask on SLURM (pip install dask-jobqueue): one GPU job per worker.

    python infra/dask/slurm.py 4     # 4 GPU workers; prints the scheduler address
"""

import sys

from dask_jobqueue import SLURMCluster

if __name__ == "__main__":
    cluster = SLURMCluster(
        queue="gpu", cores=4, processes=1, memory="32GB", walltime="08:00:00",
        job_extra_directives=["--gres=gpu:1"],
        worker_extra_args=["--resources", "GPU=1", "--nthreads", "1"],
        scheduler_options={"port": 8786, "dashboard_address": ":8787"},
        job_script_prologue=["export DO_NOT_TRACK=1", "source ~/vertfrac/.venv/bin/activate"],
    )
    cluster.scale(jobs=int(sys.argv[1]) if len(sys.argv) > 1 else 2)
    print(cluster.scheduler_address, flush=True)
    input("press Enter to stop the cluster\n")
    cluster.close()
