-- Issue 18 §1–3: worker onboarding (applications, documents, audited review steps,
-- identity and background checks), training (courses, exams, attempts, practical
-- assessments), the qualifications that gate dispatch, and certificate states with reasons.

-- Reviewers judge applications (accounts/rules.py Role). Another change may widen the
-- roles again: this keeps every role before it (0001, finance of 0020) and adds reviewer.
ALTER TABLE users DROP CONSTRAINT users_roles_check;
ALTER TABLE users ADD CONSTRAINT users_roles_check CHECK (
    roles <@ ARRAY['customer','worker','merchant','dispatcher','admin','finance','reviewer']::text[]
    AND cardinality(roles) > 0);

-- A worker who came through onboarding must pass each skill's exam before the skill is
-- dispatchable; workers an admin created (or the demo seeded) count as having passed.
ALTER TABLE workers ADD COLUMN exams_required boolean NOT NULL DEFAULT false;

-- Certificates: states with a reason, who decided, the scan, reminders sent.
ALTER TABLE worker_certificates DROP CONSTRAINT worker_certificates_status_check;
ALTER TABLE worker_certificates ADD CONSTRAINT worker_certificates_status_check
    CHECK (status IN ('pending', 'verified', 'rejected', 'reverify'));
ALTER TABLE worker_certificates
    ADD COLUMN reason      text NOT NULL DEFAULT '',
    ADD COLUMN file_id     bigint REFERENCES files(id),
    ADD COLUMN reviewed_by bigint REFERENCES users(id),
    ADD COLUMN reviewed_at timestamptz;
CREATE INDEX worker_certificates_expiry ON worker_certificates (expires_on) WHERE status = 'verified';

-- Every change of a certificate's state, and the expiry reminders sent (once each).
CREATE TABLE certificate_steps (
    id             bigserial PRIMARY KEY,
    certificate_id bigint NOT NULL REFERENCES worker_certificates(id) ON DELETE CASCADE,
    at             timestamptz NOT NULL,
    actor_id       bigint REFERENCES users(id),
    status         text NOT NULL,
    reason         text NOT NULL DEFAULT ''
);
CREATE INDEX certificate_steps_cert ON certificate_steps (certificate_id, id);
CREATE TABLE certificate_reminders (
    certificate_id bigint NOT NULL REFERENCES worker_certificates(id) ON DELETE CASCADE,
    days_before    integer NOT NULL,
    expires_on     date NOT NULL,
    sent_at        timestamptz NOT NULL,
    PRIMARY KEY (certificate_id, days_before, expires_on)
);

-- Which certificates a skill needs before it is dispatchable (deep cleaning: 家政服务员证).
CREATE TABLE skill_certificates (
    skill            text NOT NULL REFERENCES skills(code) ON DELETE CASCADE,
    certificate_kind text NOT NULL REFERENCES certificate_kinds(code) ON DELETE CASCADE,
    PRIMARY KEY (skill, certificate_kind)
);

CREATE TABLE applications (
    id                bigserial PRIMARY KEY,
    user_id           bigint NOT NULL UNIQUE REFERENCES users(id) ON DELETE CASCADE,
    city_id           text REFERENCES cities(id),
    real_name         text NOT NULL DEFAULT '',
    id_number         text,
    birth_date        date,
    skills            text[] NOT NULL DEFAULT '{}',
    home_lat          double precision CHECK (home_lat BETWEEN -90 AND 90),
    home_lng          double precision CHECK (home_lng BETWEEN -180 AND 180),
    status            text NOT NULL DEFAULT 'draft'
                      CHECK (status IN ('draft', 'submitted', 'changes_requested', 'approved', 'rejected')),
    reason            text NOT NULL DEFAULT '',
    identity_status   text NOT NULL DEFAULT 'unchecked'
                      CHECK (identity_status IN ('unchecked', 'verified', 'mismatch', 'unavailable')),
    identity_detail   text NOT NULL DEFAULT '',
    background_status text NOT NULL DEFAULT 'unchecked'
                      CHECK (background_status IN ('unchecked', 'clear', 'record', 'unavailable')),
    background_detail text NOT NULL DEFAULT '',
    submitted_at      timestamptz,
    decided_at        timestamptz,
    decided_by        bigint REFERENCES users(id),
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL
);
-- One application per identity document.
CREATE UNIQUE INDEX applications_id_number ON applications (id_number) WHERE id_number IS NOT NULL;
CREATE INDEX applications_queue ON applications (status, submitted_at, id);

CREATE TABLE application_documents (
    id               bigserial PRIMARY KEY,
    application_id   bigint NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
    kind             text NOT NULL CHECK (kind IN ('id_front', 'id_back', 'face', 'health',
                                                   'skill_certificate', 'no_criminal_record')),
    certificate_kind text REFERENCES certificate_kinds(code),
    number           text NOT NULL DEFAULT '',
    issued_on        date,
    expires_on       date,
    file_id          bigint NOT NULL REFERENCES files(id),
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'approved', 'rejected', 'replaced')),
    reason           text NOT NULL DEFAULT '',
    reviewed_by      bigint REFERENCES users(id),
    reviewed_at      timestamptz,
    created_at       timestamptz NOT NULL,
    CHECK (issued_on IS NULL OR expires_on IS NULL OR issued_on < expires_on)
);
CREATE INDEX application_documents_app ON application_documents (application_id, id);

-- The audit: every step of an application, by whom, with the reason.
CREATE TABLE application_steps (
    id             bigserial PRIMARY KEY,
    application_id bigint NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
    at             timestamptz NOT NULL,
    actor_id       bigint REFERENCES users(id),
    step           text NOT NULL,
    document_id    bigint REFERENCES application_documents(id) ON DELETE SET NULL,
    reason         text NOT NULL DEFAULT '',
    detail         jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX application_steps_app ON application_steps (application_id, id);

-- Training: course materials per skill, one exam per skill with its question bank.
CREATE TABLE courses (
    id         bigserial PRIMARY KEY,
    skill      text NOT NULL REFERENCES skills(code) ON DELETE CASCADE,
    title_zh   text NOT NULL,
    title_en   text NOT NULL,
    materials  jsonb NOT NULL DEFAULT '[]',
    created_at timestamptz NOT NULL
);
CREATE INDEX courses_skill ON courses (skill);

CREATE TABLE exams (
    id             bigserial PRIMARY KEY,
    skill          text NOT NULL UNIQUE REFERENCES skills(code) ON DELETE CASCADE,
    title_zh       text NOT NULL,
    title_en       text NOT NULL,
    question_count integer NOT NULL CHECK (question_count BETWEEN 1 AND 200),
    time_limit_s   integer NOT NULL CHECK (time_limit_s BETWEEN 60 AND 14400),
    pass_percent   integer NOT NULL CHECK (pass_percent BETWEEN 1 AND 100),
    max_attempts   integer NOT NULL CHECK (max_attempts BETWEEN 1 AND 20),
    created_at     timestamptz NOT NULL
);

CREATE TABLE exam_questions (
    id         bigserial PRIMARY KEY,
    exam_id    bigint NOT NULL REFERENCES exams(id) ON DELETE CASCADE,
    kind       text NOT NULL CHECK (kind IN ('single', 'multiple', 'true_false')),
    text_zh    text NOT NULL,
    text_en    text NOT NULL,
    choices    jsonb NOT NULL,
    answer     smallint[] NOT NULL,
    points     integer NOT NULL DEFAULT 1 CHECK (points BETWEEN 1 AND 100)
);
CREATE INDEX exam_questions_exam ON exam_questions (exam_id, id);

CREATE TABLE exam_attempts (
    id           bigserial PRIMARY KEY,
    exam_id      bigint NOT NULL REFERENCES exams(id) ON DELETE CASCADE,
    user_id      bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    seed         bigint NOT NULL,
    question_ids bigint[] NOT NULL,
    started_at   timestamptz NOT NULL,
    deadline_at  timestamptz NOT NULL,
    submitted_at timestamptz,
    answers      jsonb,
    score        integer,
    max_score    integer,
    passed       boolean
);
CREATE INDEX exam_attempts_user ON exam_attempts (user_id, exam_id, id);

CREATE TABLE practical_assessments (
    id          bigserial PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    skill       text NOT NULL REFERENCES skills(code),
    assessor_id bigint NOT NULL REFERENCES users(id),
    passed      boolean NOT NULL,
    score       integer NOT NULL CHECK (score BETWEEN 0 AND 100),
    notes       text NOT NULL DEFAULT '',
    at          timestamptz NOT NULL
);
CREATE INDEX practical_assessments_user ON practical_assessments (user_id, skill);

-- A skill whose exam the person passed (the attempt that did it).
CREATE TABLE skill_qualifications (
    user_id      bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    skill        text NOT NULL REFERENCES skills(code) ON DELETE CASCADE,
    attempt_id   bigint REFERENCES exam_attempts(id) ON DELETE SET NULL,
    qualified_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, skill)
);

-- Every applicant uploads a health certificate (健康证): its kind must exist (the demo's
-- seeding writes the same row).
INSERT INTO certificate_kinds (code, name_zh, name_en, validity_years)
VALUES ('health', '健康证', 'Health certificate', 1) ON CONFLICT (code) DO NOTHING;

-- Issue 18 §4: quality and discipline. Facts staff record (complaints, spot checks), the
-- rewards and penalties given (each with its reason, an appeal and its decision), and
-- every step of them. Money (fines, bonuses) is recorded here; it is booked only once a
-- ledger exists (ledger_status 'unbooked').
CREATE TABLE quality_events (
    id         bigserial PRIMARY KEY,
    worker_id  bigint NOT NULL REFERENCES workers(user_id) ON DELETE CASCADE,
    kind       text NOT NULL CHECK (kind IN ('complaint', 'spot_check')),
    passed     boolean,
    order_id   bigint REFERENCES orders(id),
    note       text NOT NULL DEFAULT '',
    created_by bigint REFERENCES users(id),
    at         timestamptz NOT NULL,
    CHECK ((kind = 'spot_check') = (passed IS NOT NULL))
);
CREATE INDEX quality_events_worker ON quality_events (worker_id, at);

CREATE TABLE discipline_actions (
    id              bigserial PRIMARY KEY,
    worker_id       bigint NOT NULL REFERENCES workers(user_id) ON DELETE CASCADE,
    kind            text NOT NULL CHECK (kind IN ('warning', 'fine', 'suspension', 'dismissal',
                                                  'bonus', 'badge', 'priority')),
    amount_fen      bigint CHECK (amount_fen IS NULL OR amount_fen > 0),
    starts_at       timestamptz NOT NULL,
    ends_at         timestamptz,
    status          text NOT NULL DEFAULT 'active'
                    CHECK (status IN ('active', 'appealed', 'upheld', 'overturned')),
    reason          text NOT NULL,
    score           integer,
    ledger_status   text NOT NULL DEFAULT 'not_applicable'
                    CHECK (ledger_status IN ('not_applicable', 'unbooked', 'booked')),
    created_by      bigint REFERENCES users(id),
    created_at      timestamptz NOT NULL,
    appeal_text     text,
    appealed_at     timestamptz,
    decided_by      bigint REFERENCES users(id),
    decided_at      timestamptz,
    decision_reason text NOT NULL DEFAULT '',
    CHECK (ends_at IS NULL OR ends_at > starts_at)
);
CREATE INDEX discipline_actions_worker ON discipline_actions (worker_id, id);

CREATE TABLE discipline_steps (
    id        bigserial PRIMARY KEY,
    action_id bigint NOT NULL REFERENCES discipline_actions(id) ON DELETE CASCADE,
    at        timestamptz NOT NULL,
    actor_id  bigint REFERENCES users(id),
    step      text NOT NULL,
    reason    text NOT NULL DEFAULT ''
);
CREATE INDEX discipline_steps_action ON discipline_steps (action_id, id);
