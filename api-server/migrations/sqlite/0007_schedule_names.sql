-- A schedule's name is unique among its agent's schedules: a create claims the name here before
-- it creates the Schedule object, so two creates of one name cannot both take it. A claim whose
-- schedule is gone (deleted while no API server watched) is taken over once it is a minute old.
CREATE TABLE schedule_names (
    namespace       TEXT NOT NULL,
    agent           TEXT NOT NULL,
    name            TEXT NOT NULL,
    schedule        TEXT NOT NULL,
    claimed_unix    INTEGER NOT NULL,
    PRIMARY KEY (namespace, agent, name)
);
