# Link groups, crashes, the socket lister and policy.
usmc_test(lgr_reuse)
add_test(NAME lgr_reuse_1000 COMMAND lgr_reuse 1000)
