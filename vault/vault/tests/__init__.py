import logging

# Request warnings (400/404/409...) are expected by many tests; keep the test output readable.
logging.disable(logging.CRITICAL)
