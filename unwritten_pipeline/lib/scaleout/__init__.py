"""Scale-out on Celery + Redis: LLM hosts and their capacities, queues, the local service stack.

Plain Python (no dagster import): `hosts` parses the LLM servers a deployment may use and spreads
the nightly partitions over them; `queues` names the Celery queues steps are routed to; `stack`
renders the instance and Celery configuration and starts/stops Redis, PostgreSQL, the workers and
the daemon on 127.0.0.1; `postgres` runs a throwaway PostgreSQL cluster.
"""
