# a job file that is only a comment
// and another
