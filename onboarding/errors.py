"""Errors of the onboarding package."""

from __future__ import annotations

from doorstep.errors import Conflict, DoorstepError, InvalidInput, NotFound


class OnboardingError(DoorstepError):
    """Root of the onboarding package's errors."""


class InvalidOnboardingInput(InvalidInput, OnboardingError):
    """A field breaks a rule; the message states it."""


class InvalidIdNumber(InvalidInput, OnboardingError):
    """A resident identity number that breaks GB 11643-1999."""

    code = "invalid_id_number"


class WrongDocument(InvalidInput, OnboardingError):
    """A document of the wrong type or size for its kind."""

    code = "wrong_document"


class ApplicationNotFound(NotFound, OnboardingError):
    """No such application, or not visible to the caller."""

    code = "application_not_found"


class ApplicationState(Conflict, OnboardingError):
    """The application is not in a state that allows this."""

    code = "application_state"


class DuplicateIdentity(Conflict, OnboardingError):
    """Another application holds this identity number."""

    code = "duplicate_identity"


class ExamNotFound(NotFound, OnboardingError):
    """No such exam, course or attempt, or not the caller's."""

    code = "exam_not_found"


class ExamTimeUp(InvalidInput, OnboardingError):
    """An answer sent after the attempt's time limit."""

    code = "exam_time_up"


class ExamAttemptsUsed(Conflict, OnboardingError):
    """Every attempt the exam allows is used."""

    code = "exam_attempts_used"


class ExamState(Conflict, OnboardingError):
    """The attempt was submitted already, or another is open."""

    code = "exam_state"


class CertificateState(Conflict, OnboardingError):
    """The certificate is not in a state that allows this."""

    code = "certificate_state"


class AssesseeNotFound(NotFound, OnboardingError):
    """No such person, or not one the caller may assess (outside their cities)."""

    code = "assessee_not_found"
