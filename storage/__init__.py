"""Persistence: SQLAlchemy 2 async models, repositories and unit of work, Alembic migrations.

* :mod:`storage.db` — ``create_engine(url, schema=…)`` and ``session_factory(engine)``
* :mod:`storage.migrate` — ``upgrade(url)`` / ``current_revision(url)``, no alembic.ini needed
* :mod:`storage.uow` — ``SqlUnitOfWorkFactory(session_factory)``: the ``UnitOfWork`` port
* :mod:`storage.geocode_cache` — ``SqlGeocodeCache(session_factory)``: the ``GeocodeCache`` port

Nothing SQLAlchemy leaves this package: repositories speak the domain dataclasses.
"""
