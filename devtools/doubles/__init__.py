"""Test doubles: servers that stand in for the vendor and for AWS (moto, Lambda's Invoke API,
an SQS event source, a token issuer, a webhook receiver) and the throwaway real servers."""
