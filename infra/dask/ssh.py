"""Dask over SSH: scheduler on the first host, GPU workers on the others.

    python infra/dask/ssh.py gpu1 gpu2 gpu3      # prints the scheduler address, keeps it up
    vertfrac screen s3://pacs/ct --out s3://vertfrac/tables --scheduler tcp://gpu1:8786 --gpu
"""

import sys

from distributed import SSHCluster

if __name__ == "__main__":
    hosts = sys.argv[1:] or ["localhost", "localhost"]
    cluster = SSHCluster(
        hosts,
        connect_options={"known_hosts": None},
        scheduler_options={"port": 8786, "dashboard_address": ":8787"},
        worker_options={"nthreads": 1, "n_workers": 1, "resources": {"GPU": 1}, "memory_limit": "16GiB"},
        remote_python=sys.executable,
    )
    print(cluster.scheduler_address, flush=True)
    input("press Enter to stop the cluster\n")
    cluster.close()
