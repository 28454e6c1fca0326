"""Debtor-facing HTTP surface: handlers parse input, call one service, render a page or fragment."""
