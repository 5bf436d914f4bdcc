"""diemthi: THPT exam-score lookup for provincial Zalo Official Accounts."""

__version__ = "0.1.0"
